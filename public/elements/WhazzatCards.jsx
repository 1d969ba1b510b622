// Whazzat's product cards: a Chainlit custom element (agent/ui/card_element.py builds its props).
// Chainlit fetches this file from /public/elements/ and renders it with react-runner; `props` is global.
// Everything shown is text (React escapes it); links and pictures are used only for http(s) URLs.
// Styles: public/whazzat.css (classes start with "wz-").
import { useState } from 'react';

const isWebUrl = (url) => typeof url === 'string' && /^https?:\/\//i.test(url);

function Placeholder({ label }) {
  return (
    <div className="wz-image wz-image-missing" role="img" aria-label={label}>
      <svg viewBox="0 0 24 24" width="40" height="40" aria-hidden="true" fill="none" stroke="currentColor"
           strokeWidth="1.5" strokeLinecap="round" strokeLinejoin="round">
        <path d="M21 8 12 3 3 8v8l9 5 9-5V8Z" />
        <path d="m3 8 9 5 9-5M12 13v8" />
      </svg>
    </div>
  );
}

function Picture({ src, alt }) {
  const [failed, setFailed] = useState(false);
  if (!isWebUrl(src) || failed) return <Placeholder label={`No picture: ${alt}`} />;
  return (
    <img className="wz-image" src={src} alt={alt} loading="lazy" referrerPolicy="no-referrer"
         onError={() => setFailed(true)} />
  );
}

function Stars({ rating, reviews, reviewsLabel }) {
  if (typeof rating !== 'number') return null;
  const filled = Math.max(0, Math.min(100, (rating / 5) * 100));
  return (
    <div className="wz-rating">
      <span className="wz-stars" role="img" aria-label={`${rating.toFixed(1)} out of 5 stars`}>
        <span className="wz-stars-empty" aria-hidden="true">★★★★★</span>
        <span className="wz-stars-full" aria-hidden="true" style={{ width: `${filled}%` }}>★★★★★</span>
      </span>
      <span className="wz-rating-value">{rating.toFixed(1)}</span>
      {typeof reviews === 'number' ? (
        <span className="wz-reviews">({reviewsLabel || reviews} {reviews === 1 ? 'review' : 'reviews'})</span>
      ) : null}
    </div>
  );
}

function Why({ listing }) {
  const parts = listing.parts || [];
  if (!parts.length) return null;
  return (
    <details className="wz-why">
      <summary>Why this?</summary>
      <ul>
        {parts.map((part) => (
          <li key={part.name}>
            <span className="wz-part-label">{part.label}</span>
            <span className="wz-part-bar" aria-hidden="true">
              <span style={{ width: `${Math.round(Math.max(0, Math.min(1, part.value)) * 100)}%` }} />
            </span>
            <span className="wz-part-value">
              {part.value.toFixed(2)}{typeof part.weight === 'number' ? ` × ${part.weight}` : ''}
            </span>
          </li>
        ))}
      </ul>
      {typeof listing.score === 'number' ? (
        <p className="wz-muted">Score {listing.score.toFixed(2)}: the weighted sum of these parts.</p>
      ) : null}
    </details>
  );
}

function ExternalLink({ url, label, children }) {
  if (!isWebUrl(url)) return null;
  return (
    <a className="wz-link" href={url} target="_blank" rel="noopener noreferrer"
       aria-label={`${label} (opens Amazon in a new tab)`}>
      {children}
      <span aria-hidden="true"> ↗</span>
    </a>
  );
}

function ProductCard({ listing }) {
  return (
    <article className="wz-card" data-testid="wz-card">
      <Picture src={listing.image} alt={listing.image_alt} />
      <div className="wz-card-body">
        <h4 className="wz-title">{listing.title}</h4>
        <div className="wz-meta">
          {listing.price ? <span className="wz-price">{listing.price}</span> : null}
          {listing.prime ? <span className="wz-badge">Prime</span> : null}
          {listing.sponsored ? <span className="wz-badge wz-badge-muted">Sponsored</span> : null}
        </div>
        <Stars rating={listing.rating} reviews={listing.reviews} reviewsLabel={listing.reviews_label} />
        <Why listing={listing} />
        <ExternalLink url={listing.url} label={`View ${listing.title} on Amazon`}>View on Amazon</ExternalLink>
      </div>
    </article>
  );
}

function GroupHeading({ group }) {
  return (
    <header className="wz-group-header">
      <h3 className="wz-group-title">{group.product}</h3>
      {group.votes ? <span className="wz-votes">{group.votes}</span> : null}
      {group.why ? <p className="wz-muted wz-group-why">{group.why}</p> : null}
    </header>
  );
}

function CompactCard({ group }) {
  return (
    <article className="wz-card wz-compact" data-testid="wz-compact-card">
      <div className="wz-compact-icon" aria-hidden="true">
        <svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" strokeWidth="2"
             strokeLinecap="round"><circle cx="10.5" cy="10.5" r="6.5" /><path d="m15.5 15.5 5 5" /></svg>
      </div>
      <div className="wz-card-body">
        <GroupHeading group={group} />
        {(group.links || []).map((link) => (
          <ExternalLink key={link.url} url={link.url} label={link.title}>{link.title}</ExternalLink>
        ))}
      </div>
    </article>
  );
}

function ProductGroup({ group }) {
  return (
    <section className="wz-group" data-testid="wz-group">
      <GroupHeading group={group} />
      <div className="wz-grid">
        {(group.listings || []).map((listing, index) => (
          <ProductCard key={`${listing.url || listing.title}-${index}`} listing={listing} />
        ))}
      </div>
      {(group.links || []).map((link) => (
        <ExternalLink key={link.url} url={link.url} label={link.title}>{link.title}</ExternalLink>
      ))}
    </section>
  );
}

export default function WhazzatCards() {
  const groups = props.groups || [];
  const compact = groups.filter((group) => group.compact);
  const full = groups.filter((group) => !group.compact);
  const notes = props.notes || [];
  const rewrites = props.rewrites || [];
  return (
    <div className="wz-cards">
      {notes.length ? (
        <div className="wz-notes" role="status">
          {notes.map((note) => <p key={note}>⚠️ {note}</p>)}
        </div>
      ) : null}
      {full.map((group) => <ProductGroup key={group.product} group={group} />)}
      {compact.length ? (
        <div className="wz-compact-grid">
          {compact.map((group) => <CompactCard key={group.product} group={group} />)}
        </div>
      ) : null}
      <footer className="wz-footer">
        {rewrites.length ? <p className="wz-muted">Also asked as: {rewrites.join(' · ')}</p> : null}
        {props.hint ? <p className="wz-hint">{props.hint}</p> : null}
      </footer>
    </div>
  );
}

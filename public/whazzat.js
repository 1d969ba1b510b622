// Whazzat's landing page: puts the app's two-line description (the [UI] description of
// .chainlit/config.toml, one line per sentence break) under the logo of Chainlit's welcome screen.
// Loaded through [UI] custom_js. The welcome screen comes back with every new chat, hence the observer.
(function () {
  const meta = document.querySelector('meta[name="description"]');
  const lines = ((meta && meta.getAttribute('content')) || '')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  if (!lines.length) return;

  function addTagline() {
    const welcome = document.getElementById('welcome-screen');
    if (!welcome || welcome.querySelector('.wz-tagline')) return;
    const logo = welcome.querySelector('img.logo');
    if (!logo) return;
    const tagline = document.createElement('p');
    tagline.className = 'wz-tagline';
    tagline.id = 'wz-tagline';
    for (const line of lines) {
      const span = document.createElement('span');
      span.textContent = line; // text, never HTML
      tagline.appendChild(span);
    }
    logo.insertAdjacentElement('afterend', tagline);
  }

  new MutationObserver(addTagline).observe(document.body, { childList: true, subtree: true });
  addTagline();
})();

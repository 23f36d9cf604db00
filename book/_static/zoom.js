/* srkit book: a click (or Enter) on a figure shows it at twice its own pixels, with
   square pixels, in an overlay that scrolls both ways; a click, Escape or Enter
   closes it. Works offline; the slider's own images are left alone. */
(() => {
  const FIGURES = ".bd-article .cell_output img, .bd-article figure img";
  let overlay = null;
  let opener = null;

  function close() {
    if (!overlay) return;
    overlay.remove();
    overlay = null;
    if (opener) opener.focus();
  }

  function open(img) {
    close();
    opener = img;
    overlay = document.createElement("div");
    overlay.className = "srkit-zoom";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", "Magnified figure: click or press Escape to close");
    overlay.tabIndex = -1;
    const big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt;
    big.style.width = `${2 * img.naturalWidth}px`;
    overlay.appendChild(big);
    overlay.addEventListener("click", close);
    overlay.addEventListener("keydown", (event) => {
      if (event.key === "Enter") close();
    });
    document.body.appendChild(overlay);
    overlay.focus();
  }

  function zoomable(img) {
    return img.matches(FIGURES) && !img.closest("img-comparison-slider");
  }

  document.addEventListener("click", (event) => {
    const img = event.target instanceof Element ? event.target.closest("img") : null;
    if (img && !overlay && zoomable(img)) {
      event.preventDefault();
      open(img);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  function mark() {
    for (const img of document.querySelectorAll(FIGURES)) {
      if (!zoomable(img)) continue;
      img.classList.add("srkit-zoomable");
      img.tabIndex = 0;
      img.title = "Click to magnify";
      img.addEventListener("keydown", (event) => {
        if (event.key === "Enter") open(img);
      });
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mark);
  } else {
    mark();
  }
})();

// Served as a file, never inline, so the Content-Security-Policy can forbid inline script.
// Disables a form's buttons once it is submitted, so a double click cannot post twice.
document.addEventListener("submit", (event) => {
  const form = event.target;
  // Deferred so the pressed button's own value is still part of the submission.
  window.setTimeout(() => {
    for (const button of form.querySelectorAll("button[type=submit]")) {
      button.disabled = true;
    }
  }, 0);
});

// A page restored from the back/forward cache would otherwise keep its buttons disabled.
window.addEventListener("pageshow", () => {
  for (const button of document.querySelectorAll("button[type=submit]:disabled")) {
    button.disabled = false;
  }
});

// The sign-in window's last page: tell the connect window (our own origin only) and close.
// The connect window also polls the server, so the result shows even where the provider's
// Cross-Origin-Opener-Policy has cut this window off from it (window.opener is then null).
(function () {
  "use strict";
  var body = document.body;
  var attempt = body.getAttribute("data-attempt");
  if (attempt && window.opener) {
    try {
      window.opener.postMessage(
        { source: "connect-portal-oauth", attempt: attempt },
        window.location.origin
      );
    } catch (error) { /* the connect window is gone: it will read the result when reopened */ }
  }
  var button = document.querySelector("[data-close-window]");
  if (button) button.addEventListener("click", function () { window.close(); });
  if (attempt) {
    // Long enough to read "You're connected" before the window goes away.
    window.setTimeout(function () { window.close(); }, body.getAttribute("data-outcome") === "connected" ? 900 : 2500);
  }
})();

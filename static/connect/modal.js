// The connect modal's behaviour in the browser: closing, focus after navigation, and the OAuth
// sign-in window. Everything else is htmx driven by the server's HTML.
(function () {
  "use strict";

  var bridge = window.PortalBridge || { post: function () {}, isEmbedded: function () { return false; } };

  // --- Closing: a visible button when a page embeds or opened us, and Escape. ----------------
  // The SDK says whether it wants our button (<body data-close-button="1|0">): it is the one
  // close control of its overlay, and absent inline unless the page asks. Without the SDK's
  // word, a page that frames or opens us gets it.
  var openedByPage = window.parent !== window || !!window.opener;
  var closable = openedByPage && document.body.getAttribute("data-close-button") !== "0";

  function closeModal() {
    bridge.post("close", {});
    if (window.parent === window && window.opener) {
      window.close();
    }
  }

  function setUpClose() {
    var bar = document.querySelector("[data-portal-topbar]");
    if (bar && closable) bar.hidden = false;
    document.querySelectorAll("[data-portal-close]").forEach(function (button) {
      button.addEventListener("click", closeModal);
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented || !closable) return;
    var target = event.target;
    // Escape first clears a search box or closes an open <details>, as people expect.
    if (target && target.type === "search" && target.value) return;
    var details = target && target.closest && target.closest("details[open]");
    if (details) {
      details.open = false;
      var summary = details.querySelector("summary");
      if (summary) summary.focus();
      return;
    }
    closeModal();
  });

  // --- Focus: after a view is swapped in, move to its heading (or the marked control). --------
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.elt;
    var view = document.getElementById("view");
    if (!view || !target) return;
    if (target === view || target.id === "view") {
      var first = view.querySelector("[data-autofocus]") || view.querySelector(".has-error input, .has-error select");
      (first || view).focus({ preventScroll: true });
      if (!first) window.scrollTo({ top: 0 });
    }
  });

  // --- OAuth: the provider's page opens in a popup; if popups are blocked, the link's own
  // target (the whole window) is used instead, and the callback leads back here. -----------
  var signIn = null; // {popup, attempt, navigatedAt, severed, timer}
  var SEVER_WINDOW_MS = 2500;

  function stopWatching() {
    if (signIn && signIn.timer) window.clearInterval(signIn.timer);
  }

  // The sentences come translated from the server, on <body data-say-…> ({app} filled in here).
  function say(name, appName) {
    var key = "say" + name.charAt(0).toUpperCase() + name.slice(1);
    return (document.body.dataset[key] || "{app}").replace("{app}", appName);
  }

  function writeWaiting(popup, appName) {
    try {
      popup.document.title = say("popupTitle", appName);
      popup.document.body.style.font = "16px system-ui, sans-serif";
      popup.document.body.style.padding = "2rem";
      popup.document.body.textContent = say("popupOpening", appName);
    } catch (error) { /* not ours to write: fine */ }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-oauth-start]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    // The size the app's consent page needs (declared per app in the catalog).
    var width = parseInt(link.getAttribute("data-popup-width"), 10) || 520;
    var height = parseInt(link.getAttribute("data-popup-height"), 10) || 720;
    var features = "popup=yes,width=" + width + ",height=" + height + ",left=" +
      Math.max(0, Math.round(window.screenX + (window.outerWidth - width) / 2)) + ",top=" +
      Math.max(0, Math.round(window.screenY + (window.outerHeight - height) / 2));
    var popup = null;
    try {
      popup = window.open("", "portal-oauth", features);
    } catch (error) {
      popup = null;
    }
    if (!popup) {
      // Blocked: let the link do a full-page redirect (its href, target _top).
      return;
    }
    event.preventDefault();
    stopWatching();
    // A new attempt: the previous outcome's banner no longer applies.
    var banner = document.getElementById("portal-prompt");
    if (banner) banner.replaceChildren();
    writeWaiting(popup, link.getAttribute("data-app-name") || "the provider");
    signIn = { popup: popup, attempt: null, navigatedAt: 0, severed: false, timer: null };
    var values = {};
    if (link.getAttribute("data-oauth-flow")) values.flow = link.getAttribute("data-oauth-flow");
    if (link.getAttribute("data-oauth-credential")) values.credential = link.getAttribute("data-oauth-credential");
    var view = document.getElementById("view");
    var status = (view && view.querySelector("#oauth-status")) || document.getElementById("oauth-status");
    htmx.ajax("POST", link.getAttribute("data-oauth-start"), {
      source: link,
      target: status || "#view",
      swap: "innerHTML",
      values: values,
    }).then(function () {
      if (signIn && signIn.popup === popup && !signIn.attempt) {
        // The start was refused (the reason is shown in the modal): no window to keep.
        try { popup.close(); } catch (error) { /* already gone */ }
      }
    });
  });

  document.addEventListener("portal-oauth-open", function (event) {
    if (!signIn || !event.detail || !event.detail.url) return;
    signIn.attempt = event.detail.attempt;
    signIn.navigatedAt = Date.now();
    try {
      signIn.popup.location.replace(event.detail.url);
    } catch (error) {
      signIn.popup = window.open(event.detail.url, "portal-oauth");
    }
    watchPopup();
  });

  function attemptElement() {
    var element = document.getElementById("oauth-attempt");
    if (!element || !signIn || element.getAttribute("data-attempt") !== signIn.attempt) return null;
    return element;
  }

  function reveal(element, selector, shown) {
    var part = element.querySelector(selector);
    if (part) part.hidden = !shown;
  }

  function watchPopup() {
    stopWatching();
    signIn.timer = window.setInterval(function () {
      if (!signIn || !signIn.popup || !signIn.popup.closed) return;
      stopWatching();
      var element = attemptElement();
      if (!element) return;
      // The attempt is not cancelled: a callback already on its way is still accepted, and
      // polling goes on. The person can start again with "Try again", or Cancel.
      reveal(element, "[data-oauth-focus]", false);
      reveal(element, "[data-oauth-retry]", true);
      if (Date.now() - signIn.navigatedAt < SEVER_WINDOW_MS) {
        // A provider with Cross-Origin-Opener-Policy cuts the popup off from us as soon as it
        // loads: the window looks closed but the person may be signing in. Keep the spinner.
        signIn.severed = true;
        reveal(element, "[data-oauth-severed-hint]", true);
        return;
      }
      reveal(element, "[data-oauth-waiting]", false);
      reveal(element, "[data-oauth-closed]", true);
    }, 400);
  }

  // The callback page says it is done: ask the server now instead of at the next poll.
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin) return;
    var data = event.data;
    if (!data || data.source !== "connect-portal-oauth" || typeof data.attempt !== "string") return;
    var element = document.getElementById("oauth-attempt");
    if (element && element.getAttribute("data-attempt") === data.attempt) {
      htmx.trigger(element, "portal-refresh");
    }
  });

  // Show the sign-in window again when it went behind the modal.
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("[data-oauth-focus]")) return;
    if (signIn && signIn.popup && !signIn.popup.closed) {
      try { signIn.popup.focus(); } catch (error) { /* not reachable */ }
    }
  });

  // When the attempt ends (its element leaves the page), the popup has no more use.
  document.addEventListener("htmx:afterSettle", function () {
    if (!signIn || !signIn.attempt) return;
    if (document.getElementById("oauth-attempt")) return;
    stopWatching();
    try { if (signIn.popup && !signIn.popup.closed) signIn.popup.close(); } catch (error) { /* gone */ }
    signIn = null;
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpClose);
  } else {
    setUpClose();
  }
})();

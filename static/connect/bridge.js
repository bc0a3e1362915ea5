// The modal's side of the embedding protocol: it posts events to the page that embeds it.
//
// Message: {source: "connect-portal", event: NAME, data: DATA}, sent to window.parent when the
// modal is framed, or to window.opener when a page opened it as a popup or tab, and only ever to
// the origin the server accepted as the embedding page's (<body data-embed-origin>), which is
// one of the tenant's allowed origins. Without an accepted origin nothing is posted: never "*".
// Events: ready, did-add-authorization, did-fail-authorization-verification,
// did-remove-authorization, close.
(function () {
  "use strict";
  var SOURCE = "connect-portal";

  function targetWindow() {
    if (window.parent && window.parent !== window) return window.parent;
    if (window.opener && !window.opener.closed) return window.opener;
    return null;
  }

  function embedOrigin() {
    return (document.body && document.body.getAttribute("data-embed-origin")) || "";
  }

  function post(event, data) {
    var origin = embedOrigin();
    var target = targetWindow();
    if (!origin || !target) return false;
    try {
      target.postMessage({ source: SOURCE, event: event, data: data || {} }, origin);
      return true;
    } catch (error) {
      return false;
    }
  }

  window.PortalBridge = {
    post: post,
    isEmbedded: function () { return targetWindow() !== null; },
  };

  // Outcomes computed by the server arrive as the "portal-events" htmx trigger.
  document.addEventListener("portal-events", function (event) {
    var events = (event.detail && event.detail.events) || [];
    events.forEach(function (item) { post(item.event, item.data); });
  });

  function ready() {
    post("ready", {});
    // Outcomes of a sign-in that came back by a full-page redirect.
    var initial = document.getElementById("portal-initial-events");
    if (initial) {
      try {
        JSON.parse(initial.textContent).forEach(function (item) { post(item.event, item.data); });
      } catch (error) { /* malformed: nothing to send */ }
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();

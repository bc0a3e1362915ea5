/*!
 * Connect portal SDK: opens the account-connection modal in your page and relays its events.
 * One file, no build step. Classic script: <script src=".../static/sdk/portal-sdk.js"></script>
 * then `new PortalSDK({...})`. ES module: import { PortalSDK } from ".../static/sdk/portal-sdk.mjs".
 *
 *   const sdk = new PortalSDK({ baseUrl, sessionUrl })                       // from your server's session
 *   const sdk = new PortalSDK({ baseUrl, tenantId, userId, hash, deploymentId }) // user-hash mode
 *   sdk.eventEmitter.on("did-add-authorization", (data) => ...)
 *   sdk.renderAccountConnectionModal({ app: "hubspot" })   // iframe overlay, or { container: el }
 *   sdk.close()                                             // or Escape, or the modal's close button
 *
 * Overlay: the page behind it does not scroll while it is open; its styles and scroll position
 * come back exactly on close. One close button, the modal's own (the SDK shows a stand-in only
 * until the modal has loaded). Inline ({ container }): no close button unless you ask for one
 * with { closeButton: true }; sdk.close() always works.
 *
 * Messages are checked both ways: this page accepts only messages from the portal's origin and
 * from the modal it opened; the modal posts only to the origin the tenant allows.
 */
(function (root) {
  "use strict";

  var EVENTS = [
    "ready",
    "did-add-authorization",
    "did-fail-authorization-verification",
    "did-remove-authorization",
    "close",
  ];
  var MESSAGE_SOURCE = "connect-portal";
  // What the SDK itself shows, in the modal's languages (the same words as the modal's
  // catalogs in locale/*/LC_MESSAGES/django.po): the frame's title and the stand-in close button.
  var LABELS = {
    en: { title: "Connect your accounts", close: "Close this window" },
    fr: { title: "Connectez vos comptes", close: "Fermer cette fenêtre" },
    de: { title: "Verbinden Sie Ihre Konten", close: "Dieses Fenster schließen" },
    es: { title: "Conecte sus cuentas", close: "Cerrar esta ventana" },
    pt: { title: "Ligue as suas contas", close: "Fechar esta janela" },
    it: { title: "Collega i tuoi account", close: "Chiudi questa finestra" },
    ja: { title: "アカウントを接続", close: "このウィンドウを閉じる" },
    nl: { title: "Koppel uw accounts", close: "Dit venster sluiten" },
  };

  function labelsFor(locale) {
    var wanted = String(locale || (root.navigator && root.navigator.language) || "en");
    return LABELS[wanted.toLowerCase().split(/[-_]/)[0]] || LABELS.en;
  }

  function EventEmitter() {
    this._handlers = {};
  }
  EventEmitter.prototype.on = function (name, handler) {
    if (typeof handler !== "function") throw new TypeError("PortalSDK: a handler must be a function");
    (this._handlers[name] = this._handlers[name] || []).push(handler);
    return this;
  };
  EventEmitter.prototype.off = function (name, handler) {
    var list = this._handlers[name];
    if (!list) return this;
    this._handlers[name] = handler
      ? list.filter(function (h) {
          return h !== handler;
        })
      : [];
    return this;
  };
  EventEmitter.prototype.emit = function (name, data) {
    (this._handlers[name] || []).slice().forEach(function (handler) {
      try {
        handler(data);
      } catch (error) {
        // A failing handler of the page must not stop the others.
        if (root.console) root.console.error("PortalSDK handler for " + name + " failed", error);
      }
    });
  };

  // Keeps the page behind the overlay still: no scrolling by wheel, touch or keyboard, the
  // scrollbar's width kept so nothing shifts. The returned function puts back exactly what was
  // there (each inline style, the style attribute's absence, the scroll position, the focus).
  var HELD = [
    ["documentElement", "overflow"],
    ["body", "overflow"],
    ["body", "padding-right"],
  ];
  function holdPage(doc) {
    var view = doc.defaultView || root;
    var x = view.scrollX;
    var y = view.scrollY;
    var focused = doc.activeElement;
    var scrollbar = view.innerWidth - doc.documentElement.clientWidth;
    var saved = HELD.map(function (item) {
      var style = doc[item[0]].style;
      return {
        value: style.getPropertyValue(item[1]),
        priority: style.getPropertyPriority(item[1]),
      };
    });
    var hadStyle = {
      documentElement: doc.documentElement.hasAttribute("style"),
      body: doc.body.hasAttribute("style"),
    };
    var padding = parseFloat(view.getComputedStyle(doc.body).paddingRight) || 0;
    doc.documentElement.style.setProperty("overflow", "hidden", "important");
    doc.body.style.setProperty("overflow", "hidden", "important");
    if (scrollbar > 0) doc.body.style.setProperty("padding-right", padding + scrollbar + "px", "important");
    return function restore() {
      HELD.forEach(function (item, index) {
        var style = doc[item[0]].style;
        if (saved[index].value) style.setProperty(item[1], saved[index].value, saved[index].priority);
        else style.removeProperty(item[1]);
      });
      Object.keys(hadStyle).forEach(function (name) {
        var element = doc[name];
        if (!hadStyle[name] && element.style.length === 0) element.removeAttribute("style");
      });
      view.scrollTo({ left: x, top: y, behavior: "instant" });
      if (focused && focused !== doc.body && typeof focused.focus === "function" && doc.contains(focused)) {
        focused.focus({ preventScroll: true });
      }
    };
  }

  function originOf(url) {
    return new URL(url, root.location.href).origin;
  }

  function PortalSDK(options) {
    options = options || {};
    if (!options.baseUrl) throw new Error("PortalSDK: baseUrl is required (the portal's address).");
    this.baseUrl = String(options.baseUrl).replace(/\/+$/, "");
    this.portalOrigin = originOf(this.baseUrl);
    this.userConfig = options.userConfig || {};
    // The modal's language ("fr", "ja", ...); without it the session's, else the browser's.
    this.locale = options.locale ? String(options.locale) : "";
    this.eventEmitter = new EventEmitter();
    if (options.sessionUrl) {
      if (originOf(options.sessionUrl) !== this.portalOrigin) {
        throw new Error("PortalSDK: sessionUrl must be on baseUrl's origin (" + this.portalOrigin + ").");
      }
      this.sessionUrl = String(options.sessionUrl);
    } else if (options.tenantId && options.userId && options.hash) {
      this.tenantId = String(options.tenantId);
      this.userId = String(options.userId);
      this.hash = String(options.hash);
      this.deploymentId = options.deploymentId ? String(options.deploymentId) : "";
    } else {
      throw new Error("PortalSDK: pass sessionUrl, or tenantId, userId and hash.");
    }
    this._frame = null;
    this._overlay = null;
    this._popup = null;
    this._standInClose = null;
    this._restorePage = null;
    this._onMessage = this._onMessage.bind(this);
    this._onKeydown = this._onKeydown.bind(this);
  }

  PortalSDK.EVENTS = EVENTS.slice();

  PortalSDK.prototype.modalUrl = function (options) {
    options = options || {};
    var params = { embed_origin: root.location.origin };
    if (this.userConfig.hideAppConnectionModal) params.hide_prompt = "1";
    // Whether the modal draws its close button (and closes on Escape): in an overlay it is the
    // one close control; inline, only when the page asks for it.
    if (options.container) params.close_button = options.closeButton ? "1" : "0";
    else if (options.mode !== "popup") params.close_button = "1";
    if (options.app) params.app = String(options.app);
    if (options.locale || this.locale) params.locale = String(options.locale || this.locale);
    var url;
    if (this.sessionUrl) {
      url = new URL(this.sessionUrl);
    } else {
      url = new URL(this.baseUrl + "/embed/start");
      url.searchParams.set("tenant", this.tenantId);
      url.searchParams.set("user", this.userId);
      url.searchParams.set("hash", this.hash);
      var deployment = options.deploymentId || this.deploymentId;
      if (deployment) url.searchParams.set("deployment", deployment);
    }
    Object.keys(params).forEach(function (key) {
      url.searchParams.set(key, params[key]);
    });
    return url.toString();
  };

  PortalSDK.prototype.renderAccountConnectionModal = function (options) {
    options = options || {};
    this.close({ silent: true });
    root.addEventListener("message", this._onMessage);
    var url = this.modalUrl(options);
    if (options.mode === "popup") {
      this._popup = root.open(url, "connect-portal", "width=720,height=760");
      return this._popup;
    }
    var frame = root.document.createElement("iframe");
    frame.src = url;
    var labels = labelsFor(options.locale || this.locale);
    frame.title = options.title || labels.title;
    frame.setAttribute("referrerpolicy", "origin");
    frame.style.cssText = "border:0;width:100%;height:100%;display:block;background:#fff;";
    this._frame = frame;
    if (options.container) {
      options.container.appendChild(frame);
      return frame;
    }
    var overlay = root.document.createElement("div");
    overlay.setAttribute("data-portal-overlay", "");
    overlay.style.cssText =
      "position:fixed;inset:0;z-index:2147483000;background:rgba(15,23,42,.55);" +
      "display:flex;align-items:center;justify-content:center;padding:16px;";
    var box = root.document.createElement("div");
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-label", frame.title);
    box.style.cssText =
      "position:relative;width:min(960px,100%);height:min(720px,100%);background:#fff;" +
      "border-radius:12px;overflow:hidden;box-shadow:0 20px 60px rgba(0,0,0,.35);";
    var standIn = root.document.createElement("button");
    standIn.type = "button";
    standIn.setAttribute("aria-label", labels.close);
    standIn.setAttribute("data-portal-close-fallback", "");
    standIn.textContent = "\u00d7";
    // A stand-in for the modal's own close button while the modal loads, or when it cannot load
    // (a page the tenant does not allow): hidden once the modal says it is ready, so exactly
    // one close control shows at a time.
    standIn.style.cssText =
      "position:absolute;top:8px;right:8px;z-index:1;border:0;border-radius:999px;cursor:pointer;" +
      "width:36px;height:36px;font-size:24px;line-height:1;padding:0;color:#fff;" +
      "background:rgba(15,23,42,.6);";
    var self = this;
    standIn.addEventListener("click", function () {
      self.close();
    });
    overlay.addEventListener("click", function (event) {
      if (event.target === overlay) self.close();
    });
    box.appendChild(frame);
    box.appendChild(standIn);
    overlay.appendChild(box);
    this._restorePage = holdPage(root.document);
    root.document.body.appendChild(overlay);
    root.document.addEventListener("keydown", this._onKeydown);
    this._overlay = overlay;
    this._standInClose = standIn;
    frame.focus({ preventScroll: true });
    return frame;
  };

  PortalSDK.prototype.close = function (options) {
    var wasOpen = Boolean(this._frame || this._popup);
    root.removeEventListener("message", this._onMessage);
    root.document.removeEventListener("keydown", this._onKeydown);
    if (this._overlay && this._overlay.parentNode) this._overlay.parentNode.removeChild(this._overlay);
    else if (this._frame && this._frame.parentNode) this._frame.parentNode.removeChild(this._frame);
    if (this._popup && !this._popup.closed) this._popup.close();
    this._frame = this._overlay = this._popup = this._standInClose = null;
    if (this._restorePage) {
      var restore = this._restorePage;
      this._restorePage = null;
      restore();
    }
    if (wasOpen && !(options && options.silent)) this.eventEmitter.emit("close", {});
  };

  PortalSDK.prototype._onKeydown = function (event) {
    if (event.key === "Escape") this.close();
  };

  PortalSDK.prototype._onMessage = function (event) {
    if (event.origin !== this.portalOrigin) return;
    var from = this._frame ? this._frame.contentWindow : this._popup;
    if (!from || event.source !== from) return;
    var message = event.data;
    if (!message || message.source !== MESSAGE_SOURCE || EVENTS.indexOf(message.event) === -1) return;
    if (message.event === "close") {
      this.close();
      return;
    }
    if (message.event === "ready" && this._standInClose) this._standInClose.style.display = "none";
    this.eventEmitter.emit(message.event, message.data || {});
  };

  root.PortalSDK = PortalSDK;
})(typeof window !== "undefined" ? window : globalThis);

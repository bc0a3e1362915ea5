// The demo's example host page: it plays the tenant's product, opening the connect modal
// through the SDK in each way a product can, and lists every event the SDK hands it.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("host-example-config").textContent);
  var log = document.getElementById("events");
  var sdk = null;
  function record(name, data) {
    var item = document.createElement("li");
    item.dataset.event = name;
    item.textContent = name + " " + JSON.stringify(data);
    log.appendChild(item);
  }
  function build(mode) {
    if (sdk) sdk.close({ silent: true });
    var userConfig = { hideAppConnectionModal: document.getElementById("hide-prompt").checked };
    sdk = mode === "hash"
      ? new PortalSDK({ baseUrl: config.baseUrl, tenantId: config.tenantId, userId: config.userId,
                        hash: config.hash, deploymentId: config.deploymentId, userConfig: userConfig })
      : new PortalSDK({ baseUrl: config.baseUrl, sessionUrl: config.sessionUrl, userConfig: userConfig });
    PortalSDK.EVENTS.forEach(function (name) {
      sdk.eventEmitter.on(name, function (data) { record(name, data); });
    });
    return sdk;
  }
  document.getElementById("open-session").addEventListener("click", function () {
    build("session").renderAccountConnectionModal();
  });
  document.getElementById("open-hash").addEventListener("click", function () {
    build("hash").renderAccountConnectionModal();
  });
  document.getElementById("open-deeplink").addEventListener("click", function () {
    build("hash").renderAccountConnectionModal({ app: "sandbox-apikey" });
  });
  document.getElementById("open-inline").addEventListener("click", function () {
    build("hash").renderAccountConnectionModal({
      container: document.getElementById("inline-frame"),
      closeButton: document.getElementById("inline-close").checked,
    });
  });
  document.getElementById("close").addEventListener("click", function () {
    if (sdk) sdk.close();
  });
})();

// The connect modal's behaviour that needs no server: filtering the app list as the user types.
(function () {
  "use strict";
  function filterApps() {
    var input = document.getElementById("app-search");
    if (!input) return;
    var query = input.value.trim().toLowerCase();
    var shown = 0;
    document.querySelectorAll(".portal-app").forEach(function (item) {
      var match = !query || item.dataset.appName.indexOf(query) !== -1;
      item.hidden = !match;
      if (match) shown += 1;
    });
    var empty = document.getElementById("app-search-empty");
    if (empty) empty.hidden = shown !== 0 || !document.querySelector(".portal-app");
  }
  document.addEventListener("input", function (event) {
    if (event.target && event.target.id === "app-search") filterApps();
  });
  document.addEventListener("htmx:afterSwap", filterApps);
})();

// The admin page that shows a new secret once: a click selects all of it, ready to copy.
(function () {
  "use strict";
  var field = document.getElementById("revealed-secret");
  if (field) field.addEventListener("click", function () { field.select(); });
})();

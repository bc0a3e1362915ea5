/* The admin's JSON editor: says at once whether the text is valid JSON, and formats it on
 * request. Only a hint: the server checks the value again and names the problem and line. */
(function () {
  "use strict";

  function lineAndColumn(text, position) {
    var before = text.slice(0, position);
    var lines = before.split("\n");
    return { line: lines.length, column: lines[lines.length - 1].length + 1 };
  }

  function problemOf(text) {
    if (!text.trim()) return "";
    try {
      JSON.parse(text);
      return "";
    } catch (error) {
      var match = /position (\d+)/.exec(error.message);
      if (!match) return "Not valid JSON: " + error.message;
      var where = lineAndColumn(text, Number(match[1]));
      return "Not valid JSON at line " + where.line + ", column " + where.column + ".";
    }
  }

  function enhance(textarea) {
    var bar = document.createElement("div");
    bar.className = "json-editor-bar";
    var format = document.createElement("button");
    format.type = "button";
    format.className = "button json-editor-format";
    format.textContent = "Format";
    var hint = document.createElement("span");
    hint.className = "json-editor-hint";
    hint.setAttribute("role", "status");
    bar.appendChild(format);
    bar.appendChild(hint);
    textarea.insertAdjacentElement("afterend", bar);

    function check() {
      var problem = problemOf(textarea.value);
      hint.textContent = problem;
      textarea.classList.toggle("json-editor-invalid", Boolean(problem));
      format.disabled = Boolean(problem);
    }
    format.addEventListener("click", function () {
      if (!textarea.value.trim()) return;
      textarea.value = JSON.stringify(JSON.parse(textarea.value), null, 2);
      check();
    });
    textarea.addEventListener("input", check);
    check();
  }

  function start() {
    document.querySelectorAll("textarea.json-editor").forEach(enhance);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

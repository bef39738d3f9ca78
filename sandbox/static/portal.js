// Sandbox portal behaviour: late rendering (chaos), supplier autocomplete, dynamic PO lines.
// Event delegation on document, so content put in the page later still works.
(function () {
  "use strict";

  function renderLate() {
    var tpl = document.getElementById("late-content");
    if (!tpl) return;
    var delay = parseInt(tpl.getAttribute("data-delay-ms") || "0", 10);
    setTimeout(function () {
      var main = document.getElementById("main");
      main.replaceChildren(tpl.content.cloneNode(true));
    }, delay);
  }

  // --- autocomplete (XHR to a JSON endpoint) -----------------------------------------
  var timer = null;
  function listFor(input) { return document.getElementById(input.getAttribute("aria-controls")); }
  function closeList(input) {
    var list = listFor(input);
    if (list) { list.hidden = true; list.replaceChildren(); }
    input.setAttribute("aria-expanded", "false");
  }
  function suggest(input) {
    var url = input.getAttribute("data-autocomplete") + "?q=" + encodeURIComponent(input.value);
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onload = function () {
      if (xhr.status !== 200) { closeList(input); return; }
      var list = listFor(input);
      var results = JSON.parse(xhr.responseText);
      list.replaceChildren();
      results.forEach(function (s, i) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.id = input.id + "-opt-" + i;
        li.setAttribute("data-id", s.id);
        li.setAttribute("data-name", s.name);
        li.textContent = s.name + " (" + s.id + ") " + s.vat;
        list.appendChild(li);
      });
      list.hidden = results.length === 0;
      input.setAttribute("aria-expanded", results.length ? "true" : "false");
    };
    xhr.send();
  }
  document.addEventListener("input", function (ev) {
    var input = ev.target;
    if (!input.matches || !input.matches("[data-autocomplete]")) return;
    clearTimeout(timer);
    if (input.value.trim().length < 2) { closeList(input); return; }
    timer = setTimeout(function () { suggest(input); }, 150);
  });
  document.addEventListener("click", function (ev) {
    var option = ev.target.closest && ev.target.closest("[role=option]");
    if (option) {
      var list = option.parentElement;
      var input = document.querySelector("[aria-controls='" + list.id + "']");
      var nav = input.getAttribute("data-navigate");
      if (nav) { window.location.href = nav + encodeURIComponent(option.getAttribute("data-id")); return; }
      input.value = option.getAttribute("data-name");
      closeList(input);
      input.dispatchEvent(new Event("change", { bubbles: true }));
      return;
    }
    // --- dynamic purchase order lines --------------------------------------------------
    if (ev.target.matches && ev.target.matches("[data-add-line]")) {
      var lines = document.getElementById("lines");
      var max = 0;
      lines.querySelectorAll("[data-line]").forEach(function (el) {
        max = Math.max(max, parseInt(el.getAttribute("data-line"), 10));
      });
      var html = document.getElementById("line-template").innerHTML.split("__N__").join(String(max + 1));
      var holder = document.createElement("div");
      holder.innerHTML = html.trim();
      var line = holder.firstElementChild;
      lines.appendChild(line);
      var first = line.querySelector("input, select");
      if (first) first.focus();
      return;
    }
    if (ev.target.matches && ev.target.matches("[data-remove-line]")) {
      var row = ev.target.closest("[data-line]");
      if (row) row.remove();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderLate);
  } else {
    renderLate();
  }
})();

// DataPlump dashboard: draws every chart whose Vega-Lite spec the page carries.
(function () {
  "use strict";
  var options = { renderer: "svg", actions: { export: true, source: false, compiled: false, editor: false } };
  // CSP-safe: Vega expressions parsed to an AST and run by the interpreter vega-embed
  // bundles, never compiled with new Function (the page's CSP has no 'unsafe-eval')
  options.ast = true;
  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-spec"));
    if (!source) { return; }
    var spec = JSON.parse(source.textContent);
    window.vegaEmbed(el, spec, options).then(function () {
      el.setAttribute("data-rendered", "true");
    }).catch(function (error) {
      el.textContent = "this chart could not be drawn: " + error;
      el.classList.add("chart-error");
    });
  }
  document.querySelectorAll("[data-spec]").forEach(draw);
  var refresh = document.body.getAttribute("data-refresh");
  if (refresh && Number(refresh) > 0) {
    var reload = function () {
      // not while someone types in a filter or reads an opened record
      var busy = document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (busy || document.querySelector("details[open]")) {
        window.setTimeout(reload, Number(refresh) * 1000);
      } else {
        window.location.reload();
      }
    };
    window.setTimeout(reload, Number(refresh) * 1000);
  }
})();

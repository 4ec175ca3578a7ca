// nbconvert's reveal.js template (the slide decks, slides_config.py) is written for MathJax 2:
// it configures it with MathJax.Hub.Config and re-renders with MathJax.Hub on each slide change.
// The course vendors MathJax 3. This file is the decks' mathjax_url: it configures MathJax 3 as
// the template configures MathJax 2, loads it from ../mathjax/, and answers the MathJax 2 calls
// that the template and the widget manager make. Like ../widgets/compat.js, it also points
// RequireJS at the widget manager's icon fonts in ../widgets/. And it makes the first slide
// shown scroll when it is taller than the screen, as the template does for the others.
(function () {
  var vendored = document.currentScript.src.replace(/\/reveal\.js\/[^/]*$/, "");
  if (window.require && window.require.config) {
    require.config({paths: {"@jupyter-widgets/html-manager/dist": vendored + "/widgets"}});
  }

  var hub = {
    // the widget manager typesets labels with MathJax.Hub.Queue(["Typeset", MathJax.Hub, node])
    Queue: function (job) {
      var mathjax = window.MathJax;
      return mathjax.startup.promise.then(function () { return mathjax.typesetPromise([job[2]]); });
    },
    // the template re-renders a slide's formulas when it is shown; MathJax 3's CommonHTML output
    // needs no second pass (every slide is typeset once, on load)
    getAllJax: function () { return null; },
    Rerender: function () {},
  };
  window.MathJax = {
    tex: {
      inlineMath: [["$", "$"], ["\\(", "\\)"]],
      displayMath: [["$$", "$$"], ["\\[", "\\]"]],
      processEscapes: true,
      processEnvironments: true,
      tags: "ams",
    },
    startup: {
      ready: function () {
        MathJax.startup.defaultReady();
        MathJax.Hub = hub;
      },
    },
    Hub: hub,  // until MathJax 3 replaces this object with itself (then ready() adds it back)
  };

  // The template (reveal_scroll, which the decks turn on) makes a slide taller than the screen
  // scroll on "slidechanged", so not the first slide shown: that one gets the same on "ready".
  document.addEventListener("ready", function (event) {
    var reveal = event.target;
    if (!reveal.classList || !reveal.classList.contains("reveal")) return;
    reveal.querySelectorAll("section.present section").forEach(function (section) {
      if (section.offsetHeight > reveal.offsetHeight * 0.95) {
        section.style.height = "calc(95vh)";
        section.style.overflowY = "scroll";
        section.style.marginTop = "20px";
      }
    });
  });

  var script = document.createElement("script");
  script.src = vendored + "/mathjax/tex-mml-chtml.js";
  document.head.appendChild(script);
})();

// The live take-over (no inline script: CSP script-src 'self'). Server-sent events carry
// HTML fragments the server rendered with Jinja's autoescape: each replaces the element
// with the same id, or is appended where it belongs.
(function () {
  "use strict";

  function fragments(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return Array.prototype.slice.call(template.content.children);
  }

  function place(node, container) {
    var old = node.id ? document.getElementById(node.id) : null;
    if (old) { old.replaceWith(node); return; }
    if (node.hasAttribute("data-replace-only") || !container) { return; }
    container.appendChild(node);
  }

  var timeline = document.getElementById("timeline");
  if (timeline && timeline.dataset.events) {
    var unsent = document.getElementById("unsent");
    var conversation = new EventSource(timeline.dataset.events);
    conversation.addEventListener("message", function (event) {
      fragments(event.data).forEach(function (node) {
        // A message we sent replaces its row among those waiting to go out.
        var waiting = document.getElementById(node.getAttribute("data-supersedes") || "");
        if (waiting) { waiting.remove(); }
        var empty = document.getElementById("no-messages");
        if (empty) { empty.remove(); }
        place(node, timeline);
        node.scrollIntoView({block: "nearest"});
      });
    });
    conversation.addEventListener("status", function (event) {
      fragments(event.data).forEach(function (node) { place(node, unsent); });
    });
  }

  var queue = document.getElementById("queue");
  if (queue && queue.dataset.events) {
    var changes = new EventSource(queue.dataset.events);
    // htmx re-fetches the queue on this event (hx-trigger "queue-changed from:body").
    changes.addEventListener("queue", function () {
      document.body.dispatchEvent(new CustomEvent("queue-changed"));
    });
  }
})();

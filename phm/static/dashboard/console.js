// Alarm console: pause the 5 s refresh of the alarm rows while the operator is in the table
// (typing a shelve comment), so the row is not replaced under them. An htmx event handler rather
// than a trigger filter ("every 5s [...]"), because htmx evaluates filters as JavaScript source,
// which the Content-Security-Policy forbids.
"use strict";
document.addEventListener("htmx:beforeRequest", (event) => {
  const rows = document.getElementById("alarm-rows");
  const focused = document.activeElement;
  if (rows && event.detail.elt === rows && focused && rows.contains(focused)) {
    event.preventDefault();
  }
});

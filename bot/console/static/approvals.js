// Approvals: "Select all" ticks every draft's checkbox (they belong to the bulk form).
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.classList || !box.classList.contains("select-all")) { return; }
  document.querySelectorAll('input[name="touch"][form="bulk"]').forEach(function (each) {
    each.checked = box.checked;
  });
});

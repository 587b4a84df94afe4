// A search box with data-filter-list="ID" hides the entries of the checklist ID whose
// label does not contain what is typed (ticked entries stay ticked and are submitted).
document.addEventListener("input", (event) => {
  const box = event.target.closest("[data-filter-list]");
  if (!box) return;
  const list = document.getElementById(box.dataset.filterList);
  const needle = box.value.trim().toLowerCase();
  for (const label of list.querySelectorAll("label")) {
    label.hidden = needle !== "" && !label.textContent.toLowerCase().includes(needle);
  }
});

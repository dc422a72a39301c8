// The editor toolbar's menus ("Arrange", "More": <details> elements): one open at a time; a menu closes
// after a choice, on Escape and on a click elsewhere, except while its Import dialog is open (a file
// chooser or a paste is in progress).
(function () {
  'use strict';
  const menus = [...document.querySelectorAll('.toolbar details.toolbar-menu')];
  if (!menus.length) return;
  const importing = (menu) => !!menu.querySelector('details.import-dialog[open]');
  for (const menu of menus) {
    menu.addEventListener('toggle', () => {
      if (menu.open) for (const other of menus) if (other !== menu) other.open = false;
    });
    menu.addEventListener('click', (e) => {
      if (e.target.closest('.toolbar-menu-items > button, .toolbar-menu-items > a')) menu.open = false;
    });
  }
  document.addEventListener('click', (e) => {
    for (const menu of menus) if (menu.open && !menu.contains(e.target) && !importing(menu)) menu.open = false;
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    for (const menu of menus) {
      if (menu.open) { menu.open = false; menu.querySelector('summary').focus(); }
    }
  });
})();

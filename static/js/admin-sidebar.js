// The admin's navigation sidebar starts closed on screens narrower than WIDE, so that a change
// list's columns fit beside its filters (a 1366 px laptop has room for one of the two). It runs
// before Django's nav_sidebar.js, which reads the choice; a staff member who opens or closes the
// sidebar keeps their choice, as Django stores it.
"use strict";
{
  const WIDE = 1600;
  const KEY = "django.admin.navSidebarIsOpen";
  try {
    if (localStorage.getItem(KEY) === null && window.innerWidth < WIDE) {
      localStorage.setItem(KEY, "false");
    }
  } catch (error) {
    // No storage (a private window that refuses it): Django's default, open, stands.
  }
}

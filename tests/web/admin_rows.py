"""For the tests of admin lists: a page's rows as Django's own renderer writes them, and as
ours (portal/web/templatetags/admin_pages.py) does."""

from django.contrib.admin.templatetags.admin_list import items_for_result

from portal.web.templatetags.admin_pages import fast_results


def djangos_rows(cl) -> list[str]:
    return ["".join(items_for_result(cl, result, None)) for result in cl.result_list]


def our_rows(cl) -> list[str]:
    return ["".join(row) for row in fast_results(cl)]

from django.urls import path

from portal.billing import views

app_name = "billing"

urlpatterns = [
    path("o/<slug:org>/billing/", views.overview, name="overview"),
    path("o/<slug:org>/billing/usage.csv", views.usage_csv, name="usage_csv"),
    path("o/<slug:org>/billing/budget/", views.budget, name="budget"),
    path("o/<slug:org>/billing/invoices/", views.invoice_list, name="invoices"),
    path("o/<slug:org>/billing/invoices/<int:pk>/", views.invoice_detail, name="invoice"),
    path("o/<slug:org>/billing/invoices/<int:pk>/pdf", views.invoice_pdf, name="invoice_pdf"),
    path("o/<slug:org>/billing/invoices/<int:pk>/csv", views.invoice_csv, name="invoice_csv"),
]

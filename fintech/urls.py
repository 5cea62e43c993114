from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from fintech import views
from fintech.core import views as core_views
from fintech.core.views import healthz

admin.site.site_header = "Fintech operations — administration"
admin.site.site_title = "Fintech admin"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("audit/", views.audit, name="audit"),
    path("audit/<int:seq>/", views.audit_event, name="audit_event"),
    path("customers/", core_views.customer_list, name="customer_list"),
    path("customers/<int:pk>/", core_views.customer_detail, name="customer_detail"),
    path("customers/<int:pk>/reveal/", core_views.customer_reveal, name="customer_reveal"),
    path("customers/<int:pk>/<str:kind>/", core_views.customer_change_status, name="customer_change_status"),
    path("healthz", healthz, name="healthz"),
    path("healthz/", healthz),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Last: a section slug must not shadow the paths above.
    path("<slug:section>/", views.section, name="section"),
]

"""Staff dashboard pages of the compliance app (mounted at /compliance/; its jobs page,
/compliance/jobs/, is the dashboard section page wired in fintech.urls)."""

from django.urls import path

from . import views

app_name = "compliance"
urlpatterns = [
    path("", views.hit_queue, name="hit_queue"),
    path("hits/<int:pk>/", views.hit_detail, name="hit_detail"),
    path("hits/<int:pk>/<slug:decision>/", views.hit_decide, name="hit_decide"),
    path("rescreens/", views.rescreen_list, name="rescreen_list"),
    path("rescreens/start/", views.rescreen_start, name="rescreen_start"),
]

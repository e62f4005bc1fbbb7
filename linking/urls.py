"""Parent and student pages (filled in by the portal module)."""

app_name = "linking"
urlpatterns: list = []

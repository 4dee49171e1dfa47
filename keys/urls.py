"""Account, plans and key routes, mounted at /api/v1/."""

from django.urls import path

from keys import account_views, key_views

urlpatterns = [
    path("plans", account_views.PlansView.as_view(), name="plans"),
    path("auth/signup", account_views.SignupView.as_view(), name="auth-signup"),
    path("auth/token", account_views.TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh", account_views.TokenRefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", account_views.LogoutView.as_view(), name="auth-logout"),
    path("me", account_views.MeView.as_view(), name="me"),
    path("keys", key_views.KeyListView.as_view(), name="keys"),
    path("keys/<int:pk>", key_views.KeyDetailView.as_view(), name="key-detail"),
    path("keys/<int:pk>/rotate", key_views.KeyRotateView.as_view(), name="key-rotate"),
]

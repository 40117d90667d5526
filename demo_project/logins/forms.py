"""What the login page posts: a device to log in from, and how the risk API should misbehave."""

from django import forms


class LoginForm(forms.Form):
    device = forms.CharField(max_length=100, strip=True)


class RiskApiControlForm(forms.Form):
    fail_next = forms.IntegerField(min_value=0, max_value=100, required=False)
    fail_always = forms.BooleanField(required=False)
    delay = forms.FloatField(min_value=0, max_value=30, required=False)

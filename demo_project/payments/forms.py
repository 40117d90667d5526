"""What an order must carry; the API answers 400 with these fields' errors."""

from decimal import Decimal

from django import forms
from django.conf import settings


class OrderForm(forms.Form):
    customer = forms.CharField(max_length=100)
    amount = forms.DecimalField(max_digits=10, decimal_places=2, min_value=0, required=False)
    seconds = forms.FloatField(min_value=0, max_value=60, required=False,
                               help_text="how long scoring takes (the demo's stand-in for real work)")

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        return Decimal("10.00") if amount is None else amount

    def clean_seconds(self) -> float:
        seconds = self.cleaned_data["seconds"]
        return settings.DEMO_SCORING_SECONDS if seconds is None else seconds

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def rul_panel(context, equipment) -> dict:
    """``{% rul_panel equipment as rul %}``: the health / RUL panel's data for the equipment page."""
    from phm.condition.panel import panel_context

    return panel_context(equipment=equipment, request=context["request"])


@register.filter
def rul_days(estimate) -> str:
    """The overview's RUL cell: '41 d (23-60)', 'at least 125 d' at the model's cap."""
    if estimate is None:
        return ""
    if estimate.at_cap:
        return f"≥ {estimate.lower_days:.0f} d"
    return f"{estimate.rul_days:.0f} d ({estimate.lower_days:.0f}–{estimate.upper_days:.0f})"

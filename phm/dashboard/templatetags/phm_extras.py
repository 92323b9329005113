from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return mapping.get(key)


@register.filter
def has_role(user, role: str) -> bool:
    """``{% if user|has_role:"engineer" %}``: show a control only to users who may use it."""
    from phm.dashboard.roles import has_role as _has_role

    return _has_role(user, role)


@register.filter
def role_name(user) -> str:
    from phm.dashboard.roles import page_role

    if not getattr(user, "is_authenticated", False):
        return "anonymous"
    return page_role(user) or "no role"


@register.filter
def severity_class(band: str) -> str:
    return f"sev-{band}"

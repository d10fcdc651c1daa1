"""The desktop around the terminal: notifications through the platform's own service (`notify`), the
app-menu launcher (`launcher`) and the upkeep timer (`schedule`). Each works without the others, and each says
in one sentence what the platform lacks instead of failing."""

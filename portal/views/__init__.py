"""Portal views, one module per page family. Each view validates a form, calls one service
function of the owning app, and renders a template."""

"""CI file templates for `conveyor init` (string.Template with `@@{name}` placeholders)."""

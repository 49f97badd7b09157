"""Steps: one small module per kind of step; each action is a function of (typed state, io)."""

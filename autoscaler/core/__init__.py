"""Small immutable vocabulary shared by every layer: phases, SLOs, observations, decisions and ports."""

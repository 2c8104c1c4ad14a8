"""The edge where files become typed values: profiles, scenarios and settings are parsed here, once."""

"""The operator's side keeps no tables of its own: it reads the other apps' (overview) and
acts through their services (suspensions, staff actions on instances)."""

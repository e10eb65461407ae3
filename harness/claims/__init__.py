"""The paper claims as data (claims/claims.yaml) and how each is measured and judged."""

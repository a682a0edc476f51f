"""Where an app's source comes from: git repositories fetched into a work directory, git providers and
their webhooks."""

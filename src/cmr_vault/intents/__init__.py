"""Pull instead of push: intents customers publish, offers and invitations companies answer
with, the value a company gives for a grant, and engagement programmes."""

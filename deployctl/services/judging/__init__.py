"""The nets that judge a release on live traffic (canary, shadow window, guard) and the drill that tests them."""

"""The asyncio Playwright driver: browser pool, observations, strict actions, episodes."""

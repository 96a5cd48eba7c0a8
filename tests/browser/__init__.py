"""Browser tests: the review page in headless Chromium, driven by Playwright."""

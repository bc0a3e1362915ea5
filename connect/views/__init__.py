"""The connect modal's views: thin, each parses input, calls a selector or service, renders.

``modal``: the app list, the deep link and one app's panel; ``credentials``: one account;
``installations``: the flows that use an account; ``oauth``: the sign-in window and callback.
"""

"""The modal's use cases, one module each (allauth's ``internal/flows``): ``oauth`` (the sign-in
window), ``api_key`` (the app's form), ``account`` (rename, check again, disconnect) and
``installation`` (the flows that use an account). Each acts only inside the connect session it
is given (``access``) and orders the domain services; the sentences are ``connect.messages``.
"""

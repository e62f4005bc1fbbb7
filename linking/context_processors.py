def root_account(request):
    return {"root_account": getattr(request, "root_account", None)}

"""sideman.plugin_host"""

"""sideman.models"""

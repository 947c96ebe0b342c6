"""sideman.training"""

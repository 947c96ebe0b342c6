"""sideman.export"""

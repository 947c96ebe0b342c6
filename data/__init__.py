"""sideman.data"""

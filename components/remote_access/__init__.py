"""remote_access"""

package main

import "context"

func status(ctx context.Context, e env, args []string) int   { return exitUsage }
func timeline(ctx context.Context, e env, args []string) int { return exitUsage }
func list(ctx context.Context, e env, args []string) int     { return exitUsage }

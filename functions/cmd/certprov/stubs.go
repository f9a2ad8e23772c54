package main

import "context"

func render(ctx context.Context, e env, args []string) int   { return exitUsage }
func status(ctx context.Context, e env, args []string) int   { return exitUsage }
func timeline(ctx context.Context, e env, args []string) int { return exitUsage }
func list(ctx context.Context, e env, args []string) int     { return exitUsage }

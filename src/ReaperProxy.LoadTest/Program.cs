using ReaperProxy.LoadTest;

// ReaperProxy.LoadTest SUBCOMMAND [--option value ...]; every result is one JSON object on stdout.
return await Cli.RunAsync(args);

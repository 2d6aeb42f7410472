using ReaperProxy.Hosting;

return await ReaperProgram.RunAsync(args, Console.Out, Console.Error);

set pagination off
break malloc if $rdi >= 1024
commands
silent
printf "malloc(%lu)\n", $rdi
bt 10
continue
end
continue
